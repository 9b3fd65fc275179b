#!/bin/sh
# The built plugins export their entry points and nothing else: Dovecot
# loads modules RTLD_GLOBAL, and the Sieve and doveadm plugins carry the
# same core, whose symbols must not meet in one process (doveadm can load
# both). Automake test protocol: 0 pass, 1 fail, 77 skip.
command -v nm >/dev/null || { echo "no nm (binutils)"; exit 77; }
build=${top_builddir:?run from make check}
status=0

check() {
	so=$1; shift
	want=$(printf '%s\n' "$@" | sort)
	if [ ! -f "$so" ]; then
		echo "FAIL: $so not built"; status=1; return
	fi
	got=$(nm -D --defined-only "$so" | awk '{ print $3 }' | sort)
	if [ "$got" = "$want" ]; then
		echo "ok: $(basename "$so"): $(echo $got)"
	else
		echo "FAIL: $(basename "$so") exports:"; echo "$got"
		echo "expected:"; echo "$want"
		status=1
	fi
}

check "$build/src/sieve-dmarcreport/.libs/lib90_sieve_dmarcreport_plugin.so" \
	sieve_dmarcreport_plugin_version sieve_dmarcreport_plugin_init \
	sieve_dmarcreport_plugin_deinit sieve_dmarcreport_plugin_load \
	sieve_dmarcreport_plugin_unload
check "$build/src/doveadm-dmarcreport/.libs/lib20_doveadm_dmarcreport_plugin.so" \
	doveadm_dmarcreport_plugin_version doveadm_dmarcreport_plugin_init \
	doveadm_dmarcreport_plugin_deinit
# Dovecot 2.4 only: the settings module the config process reads
settings=$build/src/settings/.libs/libdmarcreport_settings.so
if grep -q '^settings_LTLIBRARIES = ' "$build/src/settings/Makefile"; then
	check "$settings" dmarcreport_settings_version dmarcreport_settings_set_infos
fi
exit $status
