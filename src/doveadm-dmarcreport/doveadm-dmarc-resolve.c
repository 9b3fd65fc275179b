/* doveadm dmarc --resolve: the name of a source address, looked up
   through Dovecot's dns-client service (a PTR lookup, then a forward
   lookup that must give the address back), kept in the user's database
   for dmarcreport_resolve_cache_time. All lookups of one command share
   dmarcreport_resolve_timeout; past it the names stay empty. Never in
   the delivery path. */

#include "lib.h"
#include "ioloop.h"
#include "net.h"
#include "time-util.h"
#include "dns-lookup.h"
#include "doveadm-settings.h"
#include "doveadm-dmarc.h"

struct doveadm_dmarc_resolver {
	struct dmarc_store *store;
	char *socket_path;
	struct dns_lookup_settings dns_set;
	struct timeval deadline;
	unsigned int cache_secs;
	unsigned int lookups, unresolved;
};

/* One lookup in progress, run on an ioloop of its own. */
struct resolve_wait {
	struct ioloop *ioloop;
	const struct ip_addr *want;	/* forward lookup: must be among the
					   answers */
	bool done;
	int ret;
	char *name;			/* PTR answer */
	bool matched;
};

static void resolve_callback(const struct dns_lookup_result *result,
			     struct resolve_wait *wait)
{
	unsigned int i;

	wait->done = TRUE;
	wait->ret = result->ret;
	if (result->ret == 0 && result->name != NULL)
		wait->name = i_strdup(result->name);
	for (i = 0; result->ret == 0 && wait->want != NULL &&
		    i < result->ips_count; i++) {
		if (net_ip_compare(&result->ips[i], wait->want))
			wait->matched = TRUE;
	}
	if (wait->ioloop != NULL)
		io_loop_stop(wait->ioloop);
}

/* Runs one lookup (PTR of ip, or the addresses of host) to its end or
   to the command's deadline. Returns 0 when it ended (wait->ret is its
   result), -1 when time ran out. */
static int
resolver_run(struct doveadm_dmarc_resolver *resolver,
	     struct resolve_wait *wait, const struct ip_addr *ip,
	     const char *host)
{
	struct ioloop *prev_ioloop = current_ioloop;
	struct dns_lookup_settings set = resolver->dns_set;
	struct dns_lookup *lookup;
	long long remaining;
	int ret;

	remaining = timeval_diff_msecs(&resolver->deadline, &ioloop_timeval);
	if (remaining <= 0)
		return -1;
	set.timeout_msecs = remaining;
	wait->ioloop = io_loop_create();
	set.ioloop = wait->ioloop;
	resolver->lookups++;
	if (ip != NULL)
		ret = dns_lookup_ptr(ip, &set, resolve_callback, wait, &lookup);
	else
		ret = dns_lookup(host, &set, resolve_callback, wait, &lookup);
	if (ret == 0 && !wait->done)
		io_loop_run(wait->ioloop);
	if (!wait->done)
		dns_lookup_abort(&lookup);
	io_loop_destroy(&wait->ioloop);
	io_loop_set_current(prev_ioloop);
	return wait->done ? 0 : -1;
}

struct doveadm_dmarc_resolver *
doveadm_dmarc_resolver_init(struct dmarc_store *store,
			    const struct dmarc_settings *set)
{
	struct doveadm_dmarc_resolver *resolver;

	resolver = i_new(struct doveadm_dmarc_resolver, 1);
	resolver->store = store;
	resolver->socket_path = i_strconcat(doveadm_settings->base_dir, "/",
					    DNS_CLIENT_SOCKET_NAME, NULL);
	resolver->dns_set.dns_client_socket_path = resolver->socket_path;
	resolver->deadline = ioloop_timeval;
	timeval_add_msecs(&resolver->deadline,
			  set->limits.resolve_timeout_msecs);
	resolver->cache_secs = set->limits.resolve_cache_msecs / 1000;
	return resolver;
}

void doveadm_dmarc_resolver_deinit(struct doveadm_dmarc_resolver **_resolver)
{
	struct doveadm_dmarc_resolver *resolver = *_resolver;

	*_resolver = NULL;
	if (resolver->unresolved > 0) {
		i_warning("dmarc: %u source addresses left without a name: "
			  "dmarcreport_resolve_timeout was spent",
			  resolver->unresolved);
	}
	i_free(resolver->socket_path);
	i_free(resolver);
}

const char *doveadm_dmarc_resolve(struct doveadm_dmarc_resolver *resolver,
				  const char *ip_str)
{
	struct resolve_wait ptr, fwd;
	struct ip_addr ip;
	const char *name, *error;
	int ret;

	if (ip_str == NULL || net_addr2ip(ip_str, &ip) < 0)
		return "";
	ret = dmarc_query_resolved_get(resolver->store, ip_str, ioloop_time,
				       &name, &error);
	if (ret < 0)
		i_warning("dmarc: %s", error);
	if (ret > 0)
		return name == NULL ? "" : name;

	i_zero(&ptr);
	if (resolver_run(resolver, &ptr, &ip, NULL) < 0) {
		resolver->unresolved++;
		return "";
	}
	name = NULL;
	if (ptr.ret == 0 && ptr.name != NULL) {
		/* a PTR says what its owner likes: only a name that
		   leads back to the address counts */
		i_zero(&fwd);
		fwd.want = &ip;
		if (resolver_run(resolver, &fwd, NULL, ptr.name) < 0) {
			resolver->unresolved++;
			i_free(ptr.name);
			return "";
		}
		if (fwd.matched)
			name = t_strdup(ptr.name);
		i_free(fwd.name);
	}
	i_free(ptr.name);
	if (dmarc_query_resolved_put(resolver->store, ip_str, name,
				     ioloop_time + resolver->cache_secs,
				     &error) < 0)
		i_warning("dmarc: %s", error);
	return name == NULL ? "" : name;
}
