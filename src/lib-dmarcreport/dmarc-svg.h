#ifndef DMARC_SVG_H
#define DMARC_SVG_H

/* Charts as inline SVG for the HTML report: no script, no external
   resource, fixed colours that read on light and dark backgrounds, text
   and axes in currentColor so the page's colour scheme applies. */

/* Okabe & Ito's palette: distinguishable with the common forms of colour
   blindness, and mid-tone enough for both backgrounds. */
#define DMARC_SVG_BLUE      "#0072B2"
#define DMARC_SVG_VERMILION "#D55E00"
#define DMARC_SVG_GREEN     "#009E73"
#define DMARC_SVG_ORANGE    "#E69F00"
#define DMARC_SVG_SKY       "#56B4E9"
#define DMARC_SVG_PURPLE    "#CC79A7"
#define DMARC_SVG_GREY      "#999999"

/* A value below 0 is "no value": no bar segment, a gap in a line. */
#define DMARC_SVG_NO_VALUE (-1.0)

struct dmarc_svg_series {
	const char *name;         /* legend and table header */
	const char *colour;
	/* lines also differ by dash pattern and marker shape, not only by
	   colour */
	const char *dash;         /* stroke-dasharray, NULL: solid */
	const double *values;     /* one per x */
};

struct dmarc_svg_chart {
	const char *id;           /* data-chart="..." */
	const char *title, *x_label, *y_label;
	const char *const *x_labels;
	unsigned int x_count;
	const struct dmarc_svg_series *series;
	unsigned int series_count;
	/* y axis from 0 to this; 0: a round number above the data */
	double y_max;
	const char *y_unit;       /* appended to tick labels: "%" or "" */
};

/* One <g class="bar"> per x with a <rect> per non-zero series value,
   stacked in series order from the bottom. */
void dmarc_svg_stacked_bars(string_t *dest,
			    const struct dmarc_svg_chart *chart);
/* One line per series (a <path class="line">, broken where a value is
   missing) and one marker of class "point" per value. */
void dmarc_svg_lines(string_t *dest, const struct dmarc_svg_chart *chart);

/* Text for HTML/SVG content and attribute values: &, <, >, " and '
   as entities, and control characters shown as dmarc_query_escape() does
   (a report is attacker-controlled text). A value longer than
   DMARC_SVG_MAX_TEXT bytes is cut there (at a character boundary) and
   ends in "…": the page stays small whatever a report holds, and doveadm
   query shows the whole value. */
#define DMARC_SVG_MAX_TEXT 255
void dmarc_svg_append_text(string_t *dest, const char *text);

/* "%.1f" of a number or "–" for no value. */
const char *dmarc_svg_number(double value);

#endif
