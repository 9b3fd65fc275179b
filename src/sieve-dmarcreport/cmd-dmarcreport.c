/* The command `dmarcreport;`, its operation and its action. The action
   hands the message to the core pipeline (dmarc-ingest) when the script's
   result is committed. It never changes the keep and never fails the
   delivery: whatever happens to the reports, the mail goes where the rest
   of the script sends it. */

#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "mail-storage.h"
#include "mail-user.h"

#include "sieve-common.h"
#include "sieve-extensions.h"
#include "sieve-commands.h"
#include "sieve-code.h"
#include "sieve-actions.h"
#include "sieve-validator.h"
#include "sieve-generator.h"
#include "sieve-interpreter.h"
#include "sieve-runtime-trace.h"
#include "sieve-code-dumper.h"
#include "sieve-message.h"
#include "sieve-result.h"

#include "dmarc-compat.h"
#include "dmarc-log.h"
#include "dmarc-settings.h"
#include "dmarc-ingest.h"
#include "ext-dmarcreport.h"
#include "sieve-dmarcreport-plugin.h"

/*
 * Command
 *
 * Syntax:
 *   dmarcreport
 */

static bool
cmd_dmarcreport_generate(const struct sieve_codegen_env *cgenv,
			 struct sieve_command *cmd)
{
	sieve_operation_emit(cgenv->sblock, cmd->ext,
			     &sieve_dmarcreport_operation);
	return TRUE;
}

const struct sieve_command_def sieve_dmarcreport_command = {
	.identifier = "dmarcreport",
	.type = SCT_COMMAND,
	.positional_args = 0,
	.subtests = 0,
	.block_allowed = FALSE,
	.block_required = FALSE,
	.generate = cmd_dmarcreport_generate,
};

/*
 * Action
 */

static int
act_dmarcreport_check_duplicate(const struct sieve_runtime_env *renv ATTR_UNUSED,
				const struct sieve_action *act ATTR_UNUSED,
				const struct sieve_action *act_other ATTR_UNUSED)
{
	/* A second `dmarcreport;` (also from a sieve_before script) is the
	   same request: merge it rather than fail the script. */
	return 1;
}

static void
act_dmarcreport_print(const struct sieve_action *action ATTR_UNUSED,
		      const struct sieve_result_print_env *rpenv,
		      bool *keep ATTR_UNUSED)
{
	sieve_result_action_printf(
		rpenv, "record the DMARC and SMTP TLS reports of this message");
}

/* Pigeonhole's finish event of the action, with the message's totals.
   Each report has its own line (and named event) from the core already:
   this one is at debug level. */
static void
act_dmarcreport_log_summary(const struct sieve_action_exec_env *aenv,
			    const struct dmarc_ingest_counts *counts)
{
	struct event_passthrough *e =
		sieve_action_create_finish_event(aenv)->
		add_int("dmarc_attachments", counts->attachments)->
		add_int("dmarc_reports_new", counts->reports_new)->
		add_int("dmarc_reports_duplicate", counts->reports_duplicate)->
		add_int("dmarc_failed", counts->failed)->
		add_int("dmarc_records", counts->records);

	e_debug(e->event(), "recorded DMARC reports: %u new, %u duplicate, "
		"%u not stored (%"PRIu64" records, %u attachments)",
		counts->reports_new, counts->reports_duplicate,
		counts->failed, counts->records, counts->attachments);
}

static void
act_dmarcreport_ingest(const struct sieve_action_exec_env *aenv,
		       struct mail *mail, struct mail_user *user)
{
	const struct sieve_execute_env *eenv = aenv->exec_env;
	const char *message_id = eenv->msgdata->id;
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct dmarc_ingest *ingest;
	struct istream *mail_input, *input;
	struct event *event;
	const char *error;
	time_t received;
	int ret;

	if (dmarc_compat_user_settings(user, pool_datastack_create(),
				       &set, &error) < 0) {
		sieve_result_global_error(aenv,
			"invalid settings, no report recorded "
			"(the mail is delivered): %s", dmarc_log_text(error));
		return;
	}
	if (mail_get_stream(mail, NULL, NULL, &mail_input) < 0) {
		sieve_result_global_error(aenv,
			"cannot read the message, no report "
			"recorded (the mail is delivered): %s",
			mailbox_get_last_internal_error(mail->box, NULL));
		return;
	}
	/* The date of arrival decides the archive's YYYY/MM. */
	if (mail_get_received_date(mail, &received) < 0 || received <= 0)
		received = ioloop_time;

	event = event_create(aenv->event);
	/* the sender's text: sanitised like every value a log line or an
	   event exporter may show */
	if (message_id != NULL)
		event_add_str(event, "message_id", dmarc_log_value(message_id));

	/* A child stream of its own, so that end-of-stream or an error of
	   the parse is not left on the mail's stream that other actions and
	   the keep read. */
	i_stream_seek(mail_input, 0);
	input = i_stream_create_limit(mail_input, UOFF_T_MAX);

	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, event);
	if (set.store_cache) {
		dmarc_ingest_set_store_cache(ingest,
					     sieve_dmarcreport_store_cache());
	}
	/* never wait long inside the LMTP transaction: a report the
	   database cannot take now is queued */
	dmarc_ingest_set_queue_on_failure(ingest, TRUE);
	ret = dmarc_ingest_message(ingest, input, received, &counts);
	if (ret == 0) {
		/* the database works: reports queued by earlier deliveries
		   go in now, for at most the lock timeout */
		struct dmarc_ingest_counts pending_counts;

		i_zero(&pending_counts);
		(void)dmarc_ingest_pending(ingest, FALSE,
					   set.limits.lock_timeout_msecs,
					   &pending_counts);
	}
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);

	/* After a storage failure the core's one line says the cause and
	   where the report went (queued, or how to recover it); the counts
	   would say nothing more. */
	if (ret == 0)
		act_dmarcreport_log_summary(aenv, &counts);
	event_unref(&event);
}

static int
act_dmarcreport_commit(const struct sieve_action_exec_env *aenv,
		       void *tr_context ATTR_UNUSED)
{
	const struct sieve_execute_env *eenv = aenv->exec_env;
	const struct sieve_action *action = aenv->action;
	struct mail *mail = action->mail != NULL ? action->mail :
		sieve_message_get_mail(aenv->msgctx);
	struct mail_user *user = eenv->scriptenv->user;

	/* Here, not in execute: commit runs only once the whole script
	   succeeded, so a failing script records nothing. */
	if (mail == NULL || user == NULL) {
		sieve_result_global_error(aenv,
			"no message or no mail user in this "
			"context, no report recorded");
		return SIEVE_EXEC_OK;
	}
	T_BEGIN {
		act_dmarcreport_ingest(aenv, mail, user);
	} T_END;
	/* Always OK: a bad report, or even a broken database, must never
	   cost the mail (it stays in the mailbox, and the report in the
	   pending spool or the archive). */
	return SIEVE_EXEC_OK;
}

static const struct sieve_action_def act_dmarcreport = {
	.name = "dmarcreport",
	.check_duplicate = act_dmarcreport_check_duplicate,
	.print = act_dmarcreport_print,
	.commit = act_dmarcreport_commit,
};

/*
 * Operation
 */

static bool
cmd_dmarcreport_operation_dump(const struct sieve_dumptime_env *denv,
			       sieve_size_t *address ATTR_UNUSED)
{
	sieve_code_dumpf(denv, "DMARCREPORT");
	return TRUE;
}

static int
cmd_dmarcreport_operation_execute(const struct sieve_runtime_env *renv,
				  sieve_size_t *address ATTR_UNUSED)
{
	sieve_runtime_trace(renv, SIEVE_TRLVL_ACTIONS,
		"dmarcreport action; record the DMARC reports at commit "
		"(implicit keep unchanged)");

	/* instance_limit 1 with check_duplicate merging repeats: one
	   ingest per message, however often the scripts ask. */
	if (sieve_result_add_action(renv, renv->oprtn->ext, "dmarcreport",
				    &act_dmarcreport, NULL, NULL, 1,
				    TRUE) < 0)
		return SIEVE_EXEC_FAILURE;
	return SIEVE_EXEC_OK;
}

const struct sieve_operation_def sieve_dmarcreport_operation = {
	.mnemonic = "DMARCREPORT",
	.ext_def = &sieve_dmarcreport_extension,
	.code = 0,
	.dump = cmd_dmarcreport_operation_dump,
	.execute = cmd_dmarcreport_operation_execute,
};
