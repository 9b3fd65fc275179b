/* Inline SVG charts for the HTML report: stacked bars and lines with
   axes, ticks, a legend and a <title> per chart and per value, for
   screen readers and tooltips. */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "dmarc-query.h"
#include "dmarc-svg.h"

/* The drawing area, in user units: the SVG scales to its container. */
#define SVG_WIDTH 640
#define SVG_HEIGHT 280
#define PLOT_LEFT 64
#define PLOT_RIGHT 16
#define PLOT_TOP 40
#define PLOT_BOTTOM 56
#define PLOT_W (SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT)
#define PLOT_H (SVG_HEIGHT - PLOT_TOP - PLOT_BOTTOM)
/* x labels drawn at most; every n-th one otherwise */
#define MAX_X_LABELS 8
#define MAX_Y_TICKS 8

void dmarc_svg_append_text(string_t *dest, const char *text)
{
	const char *p, *ellipsis = "";
	size_t len;

	if (text == NULL)
		return;
	len = strlen(text);
	if (len > DMARC_SVG_MAX_TEXT) {
		len = uni_utf8_data_truncate((const unsigned char *)text, len,
					     DMARC_SVG_MAX_TEXT);
		text = t_strndup(text, len);
		ellipsis = "\xe2\x80\xa6";
	}
	for (p = dmarc_query_escape(text); *p != '\0'; p++) {
		switch (*p) {
		case '&': str_append(dest, "&amp;"); break;
		case '<': str_append(dest, "&lt;"); break;
		case '>': str_append(dest, "&gt;"); break;
		case '"': str_append(dest, "&quot;"); break;
		case '\'': str_append(dest, "&#39;"); break;
		default: str_append_c(dest, *p); break;
		}
	}
	str_append(dest, ellipsis);
}

const char *dmarc_svg_number(double value)
{
	if (value < 0)
		return "\xe2\x80\x93";  /* en dash */
	if (value == (double)(uint64_t)value && value < 1e15)
		return t_strdup_printf("%"PRIu64, (uint64_t)value);
	return t_strdup_printf("%.1f", value);
}

/* A tick label short enough for the margin: 1500000 is "1.5M". */
static const char *tick_label(double value)
{
	if (value >= 1e9)
		return t_strdup_printf("%gG", value / 1e9);
	if (value >= 1e6)
		return t_strdup_printf("%gM", value / 1e6);
	if (value >= 1e4)
		return t_strdup_printf("%gk", value / 1e3);
	return dmarc_svg_number(value);
}

/* 1, 2 or 5 times a power of ten, at least x */
static double nice_step(double x)
{
	double e = 1;

	if (x <= 1)
		return 1;
	while (e * 10 <= x)
		e *= 10;
	if (x <= e)
		return e;
	if (x <= 2 * e)
		return 2 * e;
	if (x <= 5 * e)
		return 5 * e;
	return 10 * e;
}

static void chart_y_axis(const struct dmarc_svg_chart *chart, double data_max,
			 double *max_r, double *step_r)
{
	double step;

	if (chart->y_max > 0) {
		*max_r = chart->y_max;
		*step_r = chart->y_max / 5;
		return;
	}
	step = nice_step(data_max / (MAX_Y_TICKS / 2));
	*step_r = step;
	*max_r = step;
	while (*max_r < data_max)
		*max_r += step;
}

static double y_pos(double value, double max)
{
	return PLOT_TOP + PLOT_H - PLOT_H * (value > max ? max : value) / max;
}

static void
chart_begin(string_t *dest, const struct dmarc_svg_chart *chart,
	    double y_max, double y_step, bool lines)
{
	unsigned int i, every;
	double y, x;

	str_printfa(dest, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
		    "role=\"img\" viewBox=\"0 0 %d %d\" data-chart=\"",
		    SVG_WIDTH, SVG_HEIGHT);
	dmarc_svg_append_text(dest, chart->id);
	str_append(dest, "\" font-size=\"12\" "
		   "font-family=\"system-ui, sans-serif\"><title>");
	dmarc_svg_append_text(dest, chart->title);
	str_append(dest, "</title>\n");

	/* legend, above the plot */
	x = PLOT_LEFT;
	for (i = 0; i < chart->series_count; i++) {
		const struct dmarc_svg_series *s = &chart->series[i];

		if (lines) {
			str_printfa(dest, "<line x1=\"%.0f\" y1=\"14\" x2=\"%.0f\" "
				    "y2=\"14\" stroke=\"%s\" stroke-width=\"3\"%s%s%s/>",
				    x, x + 18, s->colour,
				    s->dash == NULL ? "" : " stroke-dasharray=\"",
				    s->dash == NULL ? "" : s->dash,
				    s->dash == NULL ? "" : "\"");
		} else {
			str_printfa(dest, "<rect x=\"%.0f\" y=\"8\" width=\"12\" "
				    "height=\"12\" fill=\"%s\"/>", x, s->colour);
		}
		str_printfa(dest, "<text x=\"%.0f\" y=\"18\" fill=\"currentColor\">",
			    x + 22);
		dmarc_svg_append_text(dest, s->name);
		str_append(dest, "</text>\n");
		x += 32 + 7.5 * strlen(s->name);
	}

	/* y grid, ticks and label */
	for (y = 0; y <= y_max + y_step / 1000; y += y_step) {
		str_printfa(dest, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" "
			    "y1=\"%.1f\" y2=\"%.1f\" stroke=\"currentColor\" "
			    "stroke-opacity=\"0.2\"/>"
			    "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
			    "fill=\"currentColor\">%s%s</text>\n",
			    PLOT_LEFT, PLOT_LEFT + PLOT_W, y_pos(y, y_max),
			    y_pos(y, y_max), PLOT_LEFT - 6, y_pos(y, y_max) + 4,
			    tick_label(y), chart->y_unit);
	}
	str_printfa(dest, "<text transform=\"translate(14 %d) rotate(-90)\" "
		    "text-anchor=\"middle\" fill=\"currentColor\">",
		    PLOT_TOP + PLOT_H / 2);
	dmarc_svg_append_text(dest, chart->y_label);
	str_append(dest, "</text>\n");

	/* x axis, labels and label */
	str_printfa(dest, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" "
		    "stroke=\"currentColor\"/>\n", PLOT_LEFT, PLOT_LEFT + PLOT_W,
		    PLOT_TOP + PLOT_H, PLOT_TOP + PLOT_H);
	every = (chart->x_count + MAX_X_LABELS - 1) / MAX_X_LABELS;
	if (every == 0)
		every = 1;
	for (i = 0; i < chart->x_count; i += every) {
		double band = (double)PLOT_W / chart->x_count;

		str_printfa(dest, "<text x=\"%.1f\" y=\"%d\" "
			    "text-anchor=\"middle\" fill=\"currentColor\">",
			    PLOT_LEFT + band * (i + 0.5), PLOT_TOP + PLOT_H + 18);
		dmarc_svg_append_text(dest, chart->x_labels[i]);
		str_append(dest, "</text>\n");
	}
	str_printfa(dest, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
		    "fill=\"currentColor\">", PLOT_LEFT + PLOT_W / 2,
		    SVG_HEIGHT - 8);
	dmarc_svg_append_text(dest, chart->x_label);
	str_append(dest, "</text>\n");
}

/* "2024-01-31: pass 120, fail 3" */
static void
value_title(string_t *dest, const struct dmarc_svg_chart *chart,
	    unsigned int x)
{
	unsigned int i;

	str_append(dest, "<title>");
	dmarc_svg_append_text(dest, chart->x_labels[x]);
	str_append(dest, ":");
	for (i = 0; i < chart->series_count; i++) {
		str_append(dest, i == 0 ? " " : ", ");
		dmarc_svg_append_text(dest, chart->series[i].name);
		str_printfa(dest, " %s%s",
			    dmarc_svg_number(chart->series[i].values[x]),
			    chart->series[i].values[x] < 0 ? "" : chart->y_unit);
	}
	str_append(dest, "</title>");
}

void dmarc_svg_stacked_bars(string_t *dest,
			    const struct dmarc_svg_chart *chart)
{
	double data_max = 0, y_max, y_step, band, width, sum, v, top;
	unsigned int x, i;

	for (x = 0; x < chart->x_count; x++) {
		sum = 0;
		for (i = 0; i < chart->series_count; i++) {
			if (chart->series[i].values[x] > 0)
				sum += chart->series[i].values[x];
		}
		if (sum > data_max)
			data_max = sum;
	}
	chart_y_axis(chart, data_max, &y_max, &y_step);
	chart_begin(dest, chart, y_max, y_step, FALSE);

	band = chart->x_count == 0 ? 0 : (double)PLOT_W / chart->x_count;
	width = band * 0.8;
	for (x = 0; x < chart->x_count; x++) {
		str_append(dest, "<g class=\"bar\">");
		value_title(dest, chart, x);
		sum = 0;
		for (i = 0; i < chart->series_count; i++) {
			v = chart->series[i].values[x];
			if (v <= 0)
				continue;
			top = y_pos(sum + v, y_max);
			str_printfa(dest, "<rect x=\"%.2f\" y=\"%.2f\" "
				    "width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>",
				    PLOT_LEFT + band * x + (band - width) / 2, top,
				    width, y_pos(sum, y_max) - top,
				    chart->series[i].colour);
			sum += v;
		}
		str_append(dest, "</g>\n");
	}
	str_append(dest, "</svg>\n");
}

static void
marker(string_t *dest, unsigned int shape, double x, double y,
       const char *colour)
{
	switch (shape % 3) {
	case 0:
		str_printfa(dest, "<circle class=\"point\" cx=\"%.2f\" "
			    "cy=\"%.2f\" r=\"3.5\" fill=\"%s\">", x, y, colour);
		break;
	case 1:
		str_printfa(dest, "<rect class=\"point\" x=\"%.2f\" y=\"%.2f\" "
			    "width=\"7\" height=\"7\" fill=\"%s\">",
			    x - 3.5, y - 3.5, colour);
		break;
	default:
		str_printfa(dest, "<path class=\"point\" d=\"M%.2f %.2fl4 7h-8z\" "
			    "fill=\"%s\">", x, y - 4.5, colour);
		break;
	}
}

static const char *marker_end(unsigned int shape)
{
	switch (shape % 3) {
	case 0: return "</circle>";
	case 1: return "</rect>";
	default: return "</path>";
	}
}

void dmarc_svg_lines(string_t *dest, const struct dmarc_svg_chart *chart)
{
	double data_max = 0, y_max, y_step, band, v;
	unsigned int x, i;
	bool pen_down;

	for (i = 0; i < chart->series_count; i++) {
		for (x = 0; x < chart->x_count; x++) {
			if (chart->series[i].values[x] > data_max)
				data_max = chart->series[i].values[x];
		}
	}
	chart_y_axis(chart, data_max, &y_max, &y_step);
	chart_begin(dest, chart, y_max, y_step, TRUE);

	band = chart->x_count == 0 ? 0 : (double)PLOT_W / chart->x_count;
	for (i = 0; i < chart->series_count; i++) {
		const struct dmarc_svg_series *s = &chart->series[i];

		string_t *d = t_str_new(256);

		pen_down = FALSE;
		for (x = 0; x < chart->x_count; x++) {
			v = s->values[x];
			if (v < 0) {
				pen_down = FALSE;
				continue;
			}
			str_printfa(d, "%s%.2f %.2f", pen_down ? " L" : "M",
				    PLOT_LEFT + band * (x + 0.5), y_pos(v, y_max));
			pen_down = TRUE;
		}
		/* no values, no path: an empty d is an error to browsers */
		if (str_len(d) > 0) {
			str_printfa(dest, "<path class=\"line\" fill=\"none\" "
				    "stroke=\"%s\" stroke-width=\"2\"", s->colour);
			if (s->dash != NULL) {
				str_printfa(dest, " stroke-dasharray=\"%s\"",
					    s->dash);
			}
			str_printfa(dest, " d=\"%s\"/>\n", str_c(d));
		}
		for (x = 0; x < chart->x_count; x++) {
			v = s->values[x];
			if (v < 0)
				continue;
			marker(dest, i, PLOT_LEFT + band * (x + 0.5),
			       y_pos(v, y_max), s->colour);
			str_append(dest, "<title>");
			dmarc_svg_append_text(dest, chart->x_labels[x]);
			str_append(dest, ": ");
			dmarc_svg_append_text(dest, s->name);
			str_printfa(dest, " %s%s</title>%s\n",
				    dmarc_svg_number(v), chart->y_unit,
				    marker_end(i));
		}
	}
	str_append(dest, "</svg>\n");
}
