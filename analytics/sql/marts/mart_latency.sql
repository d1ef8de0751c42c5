--! publish: latency
--! grain: day
-- mart_latency: latency percentiles, SLO attainment and goodput by model, tenant, route,
-- node and hour, plus one 'all' row. slo_attainment = requests meeting their objectives
-- (int_request_slo) / all requests in the group; goodput_rps = good requests per second of
-- the group's time span. Incremental runs compute it per UTC day: only requests that started
-- in [keep_from, keep_until) count, and `day` says which day the row describes.
CREATE OR REPLACE TEMP TABLE mart_latency AS
WITH judged AS (
    SELECT r.*, s.slo_met AS good, date_trunc('hour', to_timestamp(r.started_s)) AS hour
    FROM int_requests r
    JOIN int_request_slo s USING (request_uid)
    WHERE r.started_s >= coalesce(getvariable('keep_from'), -1e300)
      AND r.started_s < coalesce(getvariable('keep_until'), 1e300)
),
grouped AS (  -- one sort per metric and group: all four percentiles at once
SELECT
    to_timestamp(getvariable('keep_from'))                              AS day,
    CASE WHEN grouping(model) = 0 THEN 'model'
         WHEN grouping(tenant) = 0 THEN 'tenant'
         WHEN grouping(route) = 0 THEN 'route'
         WHEN grouping(host_name) = 0 THEN 'node'
         WHEN grouping(hour) = 0 THEN 'hour'
         ELSE 'all' END                                                 AS dimension,
    coalesce(model, tenant, route, host_name, strftime(hour, '%Y-%m-%dT%H:00%z'), '*')
                                                                        AS value,
    count(*)                                                            AS requests,
    count(*) FILTER (WHERE outcome = 'ok')                              AS ok_requests,
    quantile_cont(ttft_s, [0.50, 0.90, 0.95, 0.99]) AS ttft_q,
    quantile_cont(tpot_s, [0.50, 0.90, 0.95, 0.99]) AS tpot_q,
    quantile_cont(e2e_s, [0.50, 0.90, 0.95, 0.99])  AS e2e_q,
    quantile_cont(queue_s, 0.95) AS queue_p95_s,
    avg(edge_overhead_s) AS edge_overhead_mean_s, avg(queue_s) AS queue_mean_s,
    avg(prefill_s) AS prefill_mean_s, avg(decode_s) AS decode_mean_s,
    avg(other_spans_s) AS other_spans_mean_s,
    avg(good::INTEGER)                                                  AS slo_attainment,
    count(*) FILTER (WHERE good) / nullif(max(finished_s) - min(started_s), 0) AS goodput_rps
FROM judged
GROUP BY GROUPING SETS ((model), (tenant), (route), (host_name), (hour), ())
)
SELECT day, dimension, value, requests, ok_requests,
    ttft_q[1] AS ttft_p50_s, ttft_q[2] AS ttft_p90_s, ttft_q[3] AS ttft_p95_s,
    ttft_q[4] AS ttft_p99_s,
    tpot_q[1] AS tpot_p50_s, tpot_q[2] AS tpot_p90_s, tpot_q[3] AS tpot_p95_s,
    tpot_q[4] AS tpot_p99_s,
    e2e_q[1] AS e2e_p50_s, e2e_q[2] AS e2e_p90_s, e2e_q[3] AS e2e_p95_s, e2e_q[4] AS e2e_p99_s,
    queue_p95_s, edge_overhead_mean_s, queue_mean_s, prefill_mean_s, decode_mean_s,
    other_spans_mean_s, slo_attainment, goodput_rps
FROM grouped;
