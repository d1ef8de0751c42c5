-- mart_request_costs: what each response cost, with the figures it was computed from.
-- cost = Σ over its GPUs (attributed GPU-seconds × GPU price per hour / 3600)
--      + attributed joules / 3.6e6 × PUE × price per kWh.
-- Unplaced requests keep NULL costs (visible, not guessed); placed requests that fell
-- between samples have zero attributed time until the next sample arrives.
CREATE OR REPLACE TEMP TABLE mart_request_costs AS
WITH per_request AS (
    SELECT
        a.request_uid,
        sum(a.gpu_seconds)                                         AS gpu_seconds,
        sum(a.energy_j)                                            AS energy_j,
        sum(a.gpu_seconds * p.usd_per_gpu_hour / 3600.0)           AS gpu_cost_usd
    FROM int_attribution a
    LEFT JOIN pricing_gpu p USING (gpu_model)
    GROUP BY a.request_uid
),
placement AS (
    SELECT request_uid, list(gpu_uuid ORDER BY gpu_uuid) AS gpu_uuids,
           any_value(placement_source) AS placement_source
    FROM int_request_gpus
    GROUP BY request_uid
)
SELECT
    r.request_uid, r.trace_id, r.request_id, r.seen_by, r.simulated,
    r.tenant, r.model, r.route, r.host_name, r.outcome, r.work_class, r.stream, r.http_status,
    to_timestamp(r.started_s)                                      AS started_at,
    date_trunc('hour', to_timestamp(r.started_s))                  AS hour,
    r.input_tokens, r.output_tokens, r.cached_tokens,
    r.ttft_s, r.tpot_s, r.e2e_s, r.queue_s, r.prefill_s, r.decode_s, r.edge_overhead_s,
    r.other_spans_s,
    pl.gpu_uuids,
    pl.placement_source,
    pl.request_uid IS NOT NULL                                     AS placed,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.gpu_seconds, 0) END AS gpu_seconds,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.energy_j, 0) END    AS energy_j,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.gpu_cost_usd, 0) END AS gpu_cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.energy_j, 0) / 3.6e6
         * getvariable('pue') * getvariable('usd_per_kwh') END    AS energy_cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.gpu_cost_usd, 0)
         + coalesce(pr.energy_j, 0) / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh')
    END                                                            AS cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL THEN coalesce(pr.energy_j, 0) / 3.6e6
         * getvariable('pue') * getvariable('gco2e_per_kwh') END  AS carbon_g,
    getvariable('pricing_version')                                 AS pricing_version,
    getvariable('attribution_method')                              AS attribution_method
FROM int_requests r
LEFT JOIN per_request pr USING (request_uid)
LEFT JOIN placement pl USING (request_uid);
