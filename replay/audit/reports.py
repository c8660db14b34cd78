"""Canned reports: SQL over tenant-scoped views of the audit tables.

With ``--tenant`` a report runs in a database that holds only that tenant's rows
(:mod:`.scope`), so the tenant boundary does not depend on this SQL. Within it,
every report body reads only the scoped relations defined in :data:`SCOPES`
(``ev``, ``ev_since``, ``grants``, ``dl``), never ``events`` or ``dead_letters``
directly, so ``--session``/``--since`` restrict every row a report can see.
Filters are bound parameters (``$tenant``, ``$session``, ``$since``), never
spliced into the SQL text. A session is (tenant, session): every join and
group-by between rows of a session names both, because two tenants may use the
same session id.

Latencies are integer microseconds (``epoch_us`` differences, exact); "first"
means first in log order (offset), which is the order the processor decided in.
Percentiles are nearest-rank (``quantile_disc``): an observed latency, not an
interpolation between two.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPORTS", "Report", "report_sql"]

_TENANT = "(CAST($tenant AS VARCHAR) IS NULL OR {col} = $tenant)"
_SESSION = "(CAST($session AS VARCHAR) IS NULL OR {col} = $session)"
_SINCE = "(CAST($since AS TIMESTAMP) IS NULL OR {col} >= $since)"

SCOPES = f"""
ev AS (SELECT * FROM events
       WHERE {_TENANT.format(col="tenant_id")} AND {_SESSION.format(col="session_id")}),
ev_since AS (SELECT * FROM ev WHERE {_SINCE.format(col="ts")}),
grants AS (SELECT * FROM lease_grants WHERE (
       (CAST($tenant AS VARCHAR) IS NULL AND CAST($session AS VARCHAR) IS NULL)
       OR (source, partition) IN (SELECT DISTINCT source, partition FROM ev))),
dl AS (SELECT * FROM dead_letters
       WHERE {_TENANT.format(col="tenant_id")} AND {_SESSION.format(col="session_id")})
"""


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    doc: str
    select: str
    order_by: str
    since_column: str | None = None  # None: the body already reads ev_since
    has_tenant: bool = True
    ctes: str = ""


def _first(event_type: str) -> str:
    return f"arg_min(ts, \"offset\") FILTER (WHERE event_type = '{event_type}')"


def _value(expr: str, event_type: str) -> str:
    return f"arg_min({expr}, \"offset\") FILTER (WHERE event_type = '{event_type}')"


_TURNS = Report(
    "turns", "One row per turn: lifecycle times, outcome, plan, epoch, first-output and fence latency.",
    ctes=f""",
t AS (SELECT tenant_id, session_id, turn_id, min(partition) AS partition,
        {_first("TURN_OPEN")} AS opened_at, {_first("TURN_ACTIVE")} AS active_at,
        {_first("TURN_COMMIT")} AS committed_at, {_first("TURN_ABORT")} AS aborted_at,
        {_first("TURN_CLOSE")} AS closed_at, {_value("p_outcome", "TURN_CLOSE")} AS outcome,
        {_value("p_reason", "TURN_ABORT")} AS abort_reason,
        {_value("plan_hash", "TURN_OPEN")} AS plan_hash, {_value("bundle_id", "TURN_OPEN")} AS bundle_id,
        {_value("lease_epoch", "TURN_OPEN")} AS epoch, max(lease_epoch) AS last_epoch,
        {_first("OUTPUT_ACCEPTED")} AS first_output_at, {_first("CANCEL")} AS cancelled_at,
        count(*) FILTER (WHERE event_type = 'OUTPUT_ACCEPTED') AS outputs_accepted,
        count(*) AS events
      FROM ev WHERE turn_id IS NOT NULL GROUP BY tenant_id, session_id, turn_id)""",
    select="""SELECT *, epoch_us(first_output_at) - epoch_us(opened_at) AS open_to_first_output_us,
        epoch_us(aborted_at) - epoch_us(cancelled_at) AS cancel_to_abort_us FROM t""",
    order_by="opened_at, tenant_id, session_id, turn_id", since_column="opened_at")

_CANCELS = Report(
    "cancels", "One row per CANCEL: scope, the abort it caused, fence latency, egress after it (must be 0).",
    select="""SELECT c.ts AS cancelled_at, c.tenant_id, c.session_id, c.turn_id, c.p_scope AS scope,
        c.p_target AS target, c.p_reason AS reason, c.lease_epoch AS epoch, c.partition, c."offset",
        a.ts AS aborted_at, a.p_reason AS abort_reason,
        epoch_us(a.ts) - epoch_us(c.ts) AS cancel_to_abort_us,
        (SELECT count(*) FROM ev e WHERE e.source = c.source AND e.partition = c.partition
           AND e.tenant_id = c.tenant_id AND e.session_id = c.session_id AND e."offset" > c."offset"
           AND e.event_type IN ('OUTPUT_ACCEPTED', 'PLAYBACK_STARTED')
           AND (c.p_scope = 'SESSION' OR e.turn_id IS NOT DISTINCT FROM c.turn_id)
           AND (c.p_scope <> 'NODE' OR e.node_id = c.p_target)) AS egress_after_cancel
      FROM ev c LEFT JOIN ev a ON a.event_type = 'TURN_ABORT' AND a.source = c.source
        AND a.tenant_id = c.tenant_id AND a.session_id = c.session_id AND a.turn_id = c.turn_id
        AND a."offset" > c."offset"
      WHERE c.event_type = 'CANCEL'""",
    order_by='cancelled_at, "offset"', since_column="cancelled_at")

_SHEDS = Report(
    "sheds", "One row per SHED: which lane, rule and defaulting source dropped how many events.",
    select="""SELECT ts AS shed_at, tenant_id, session_id, turn_id, p_lane AS shed_lane,
        p_shed_count AS shed_count, p_reason AS reason, p_rule AS rule,
        p_defaulting_source AS defaulting_source, lease_epoch AS epoch, partition, "offset"
      FROM ev WHERE event_type = 'SHED'""",
    order_by='shed_at, "offset"', since_column="shed_at")

_DLQ = Report(
    "dlq", "One row per dead letter: reason, where the original record was, the tenant the processor "
    "established.",
    select="""SELECT ts AS dead_lettered_at, tenant_id, session_id, p_reason AS reason, p_original_topic AS original_topic,
        p_original_partition AS original_partition, p_original_offset AS original_offset,
        p_original_bytes_bytes AS original_bytes, partition, "offset"
      FROM dl""",
    order_by='dead_lettered_at, partition, "offset"', since_column="dead_lettered_at")

_LEASES = Report(
    "leases", "Epoch history per log partition: holder, grant time, events written, zombie writes.",
    ctes=""",
g AS (SELECT source, partition, p_epoch AS epoch, p_holder AS holder, ts AS granted_at, "offset",
        lag(p_epoch) OVER w AS previous_epoch, lead(ts) OVER w AS superseded_at,
        lead("offset") OVER w AS next_offset
      FROM grants WINDOW w AS (PARTITION BY source, partition ORDER BY "offset"))""",
    select="""SELECT g.partition, g.epoch, g.holder, g.granted_at, g.superseded_at, g.previous_epoch,
        g.previous_epoch IS NULL OR g.epoch > g.previous_epoch AS epoch_increases,
        count(e.event_id) AS events_written,
        count(e.event_id) FILTER (WHERE e.lease_epoch < g.epoch) AS zombie_writes, g."offset"
      FROM g LEFT JOIN ev e ON e.source = g.source AND e.partition = g.partition
        AND e.event_type <> 'LEASE_GRANTED' AND e."offset" > g."offset"
        AND (g.next_offset IS NULL OR e."offset" < g.next_offset)
      GROUP BY ALL""",
    order_by='partition, "offset"', since_column="granted_at", has_tenant=False)

_BUNDLES = Report(
    "bundles_by_session", "Per session: the admitted bundle, bundles and plans its turns ran, rejection.",
    select=f"""SELECT tenant_id, session_id, min(ts) AS first_seen_at,
        {_first("SESSION_OPEN")} AS opened_at, {_first("SESSION_CLOSE")} AS closed_at,
        {_value("bundle_id", "ADMIT")} AS admitted_bundle, {_value("p_reason", "REJECT")} AS rejected,
        count(DISTINCT turn_id) AS turns,
        string_agg(DISTINCT bundle_id, ',' ORDER BY bundle_id) FILTER (WHERE turn_id IS NOT NULL)
          AS turn_bundles,
        count(DISTINCT plan_hash) AS plan_hashes
      FROM ev WHERE event_type <> 'LEASE_GRANTED' GROUP BY tenant_id, session_id""",
    order_by="first_seen_at, tenant_id, session_id", since_column="first_seen_at")

_NODE_LATENCY = Report(
    "node_latency", "Per node: NODE_OUTPUT latency_us count, p50/p95/p99 (nearest rank) and max.",
    select="""SELECT node_id, any_value(p_kind) AS kind, count(*) AS outputs,
        quantile_disc(p_latency_us, 0.5) AS p50_us, quantile_disc(p_latency_us, 0.95) AS p95_us,
        quantile_disc(p_latency_us, 0.99) AS p99_us, max(p_latency_us) AS max_us
      FROM ev_since WHERE event_type = 'NODE_OUTPUT' AND p_latency_us IS NOT NULL
      GROUP BY node_id""",
    order_by="node_id", has_tenant=False)

REPORTS: dict[str, Report] = {r.name: r for r in (
    _TURNS, _CANCELS, _SHEDS, _DLQ, _LEASES, _BUNDLES, _NODE_LATENCY)}


def report_sql(report: Report) -> str:
    """The full statement for ``report``; bind ``tenant``, ``session`` and ``since``."""
    where = ["true"]
    if report.since_column is not None:
        where.append(_SINCE.format(col=report.since_column))
    if report.has_tenant:
        where.append(_TENANT.format(col="tenant_id"))
    return (f"WITH {SCOPES}{report.ctes},\nreport AS ({report.select})\n"
            f"SELECT * FROM report WHERE {' AND '.join(where)} ORDER BY {report.order_by}")
