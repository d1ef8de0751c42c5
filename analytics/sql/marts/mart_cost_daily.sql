--! publish: cost_daily
--! day_key: epoch(day)
--! grain: day
-- mart_cost_daily: mart_cost_hourly summed per UTC day (live runs recompute it from the
-- day's published hours).
CREATE OR REPLACE TEMP TABLE mart_cost_daily AS
SELECT
    date_trunc('day', hour) AS day, model, tenant, route, host_name,
    bool_or(simulated) AS simulated,
    sum(requests) AS requests, sum(ok_requests) AS ok_requests,
    sum(placed_requests) AS placed_requests, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sum(placed_output_tokens) AS placed_output_tokens,
    sum(gpu_seconds) AS gpu_seconds, sum(useful_gpu_seconds) AS useful_gpu_seconds,
    sum(unsuccessful_gpu_seconds) AS unsuccessful_gpu_seconds, sum(energy_j) AS energy_j,
    sum(cost_usd) AS cost_usd, sum(unsuccessful_cost_usd) AS unsuccessful_cost_usd,
    sum(idle_share_usd) AS idle_share_usd, sum(total_cost_usd) AS total_cost_usd,
    sum(carbon_g) AS carbon_g, sum(api_cost_usd) AS api_cost_usd,
    any_value(pricing_version) AS pricing_version,
    any_value(attribution_method) AS attribution_method
FROM mart_cost_hourly
GROUP BY ALL;
