--! publish: cost_hourly
--! day_key: epoch(hour)
-- mart_cost_hourly: traffic per hour the responses started, by model, tenant, route and
-- node, with their costs (mart_cost_daily sums it per day): what dashboards, reports and
-- exports count responses and tokens from. Money by the hour the GPU time ran, idle and overhead
-- included, is spend_hourly's; these costs are the same responses' by the hour they
-- started. Costs of unplaced requests are NULL in request_costs and so not summed;
-- `placed_requests` says how many responses the sums cover. GPU time of failed, aborted and
-- timed-out requests is `unsuccessful_*`: one part of what spend_hourly calls wasted.
CREATE OR REPLACE TEMP TABLE mart_cost_hourly AS
SELECT
    hour, model, tenant, route, host_name,
    bool_or(simulated)                              AS simulated,
    count(*)                                        AS requests,
    count(*) FILTER (WHERE outcome = 'ok')          AS ok_requests,
    count(*) FILTER (WHERE placed)                  AS placed_requests,
    sum(input_tokens)                               AS input_tokens,
    sum(output_tokens)                              AS output_tokens,
    sum(output_tokens) FILTER (WHERE placed)        AS placed_output_tokens,
    sum(gpu_seconds)                                AS gpu_seconds,
    sum(gpu_seconds) FILTER (WHERE work_class = 'useful') AS useful_gpu_seconds,
    sum(gpu_seconds) FILTER (WHERE work_class <> 'useful') AS unsuccessful_gpu_seconds,
    sum(energy_j)                                   AS energy_j,
    sum(cost_usd)                                   AS cost_usd,
    sum(cost_usd) FILTER (WHERE work_class <> 'useful') AS unsuccessful_cost_usd,
    sum(idle_share_usd)                             AS idle_share_usd,
    sum(total_cost_usd)                             AS total_cost_usd,
    sum(carbon_g)                                   AS carbon_g,
    sum(api_cost_usd)                               AS api_cost_usd,
    any_value(pricing_version)                      AS pricing_version,
    any_value(attribution_method)                   AS attribution_method
FROM mart_request_costs
GROUP BY hour, model, tenant, route, host_name;
