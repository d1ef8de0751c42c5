-- FOCUS-shaped cost export (FinOps Open Cost and Usage Specification column names where they
-- fit; InferLedger's own columns prefixed x_). From spend_hourly, so its BilledCost adds up
-- to the GPU spend every other surface shows: one row per charge period (hour or day, from
-- getvariable('grain')) × model × tenant × route × node for what responses are charged
-- (their own GPU time and their idle share), plus one row per GPU, period and cause for
-- what no response is charged for (x_ChargeKind idle, model_loading, preempted, unaccounted).
-- Reads the published tables; run by `inferledger analytics export`.
WITH ledger AS (  -- spend_hourly at the chosen grain
    SELECT date_trunc(getvariable('grain'), hour) AS period, * EXCLUDE (hour) FROM spend_hourly
),
usage AS (  -- what responses are charged: their own GPU time and their idle share
    SELECT period, model, tenant, route, host_name, bool_or(simulated) AS simulated,
        sum(gpu_seconds) AS gpu_seconds, sum(cost_usd) AS cost, sum(energy_j) AS energy_j,
        sum(carbon_g) AS carbon_g,
        coalesce(sum(cost_usd) FILTER (WHERE allocation = 'idle_policy'), 0) AS idle_share_usd,
        any_value(pricing_version) AS pricing_version
    FROM ledger WHERE allocation <> 'unallocated'
    GROUP BY ALL
),
counts AS (  -- responses by the hour they started, from the rollup
    SELECT date_trunc(getvariable('grain'), hour) AS period, model, tenant, route, host_name,
        sum(requests) AS requests, sum(output_tokens) AS output_tokens,
        sum(api_cost_usd) AS api_cost_usd, any_value(attribution_method) AS attribution_method,
        any_value(pricing_version) AS pricing_version, bool_or(simulated) AS simulated
    FROM cost_hourly GROUP BY ALL
),
uncharged AS (  -- GPU time no response is charged for: one row per GPU, period and cause
    SELECT period, host_name, gpu_uuid, gpu_model, bucket, bool_or(simulated) AS simulated,
        sum(gpu_seconds) AS gpu_seconds, sum(cost_usd) AS cost, sum(energy_j) AS energy_j,
        sum(carbon_g) AS carbon_g, any_value(pricing_version) AS pricing_version
    FROM ledger WHERE allocation = 'unallocated' AND bucket <> 'unmeasured'
    GROUP BY ALL
),
charges AS (
    SELECT coalesce(u.period, c.period) AS period,
        coalesce(u.model, c.model) AS model, coalesce(u.tenant, c.tenant) AS tenant,
        coalesce(u.route, c.route) AS route, coalesce(u.host_name, c.host_name) AS host_name,
        coalesce(u.gpu_seconds, 0) / 3600.0 AS gpu_hours, coalesce(u.cost, 0) AS cost,
        coalesce(c.requests, 0) AS requests, coalesce(c.output_tokens, 0) AS output_tokens,
        coalesce(u.energy_j, 0) AS energy_j, coalesce(u.carbon_g, 0) AS carbon_g,
        coalesce(u.idle_share_usd, 0) AS idle_share_usd, c.api_cost_usd,
        coalesce(u.pricing_version, c.pricing_version) AS pricing_version,
        c.attribution_method, coalesce(u.simulated, c.simulated) AS simulated
    FROM usage u
    FULL JOIN counts c ON u.period = c.period AND u.model IS NOT DISTINCT FROM c.model
        AND u.tenant IS NOT DISTINCT FROM c.tenant AND u.route IS NOT DISTINCT FROM c.route
        AND u.host_name IS NOT DISTINCT FROM c.host_name
),
lines AS (
    SELECT period, 'LLM inference: ' || coalesce(model, '(no model)') || ' for '
            || coalesce(tenant, '(no tenant)') AS charge_description,
        'model/' || coalesce(model, '(no model)') AS resource_id, model AS resource_name,
        'LLM inference' AS resource_type, gpu_hours, cost, model, tenant, route, host_name,
        requests, output_tokens, energy_j, carbon_g, idle_share_usd, api_cost_usd,
        pricing_version, attribution_method, simulated, 'usage' AS kind
    FROM charges
    UNION ALL
    SELECT period, CASE bucket WHEN 'idle' THEN 'Idle GPU time on '
                               WHEN 'model_loading' THEN 'Model loading on '
                               WHEN 'preempted' THEN 'Recomputation after preemption on '
                               ELSE 'Unaccounted GPU work on ' END || host_name,
        gpu_uuid, gpu_model, 'GPU', gpu_seconds / 3600.0, cost, NULL, NULL, NULL, host_name,
        0, 0, energy_j, carbon_g, 0, NULL, pricing_version, NULL, simulated, bucket
    FROM uncharged
)
SELECT
    date_trunc('month', period)                                  AS BillingPeriodStart,
    date_trunc('month', period) + INTERVAL 1 MONTH               AS BillingPeriodEnd,
    period                                                       AS ChargePeriodStart,
    period + CASE getvariable('grain') WHEN 'day' THEN INTERVAL 1 DAY ELSE INTERVAL 1 HOUR END
                                                                 AS ChargePeriodEnd,
    'USD'                                                        AS BillingCurrency,
    round(cost, 10)                                              AS BilledCost,
    round(cost, 10)                                              AS EffectiveCost,
    round(cost, 10)                                              AS ListCost,
    round(cost, 10)                                              AS ContractedCost,
    'Usage'                                                      AS ChargeCategory,
    'Usage-Based'                                                AS ChargeFrequency,
    charge_description                                           AS ChargeDescription,
    gpu_hours                                                    AS ConsumedQuantity,
    'GPU-Hour'                                                   AS ConsumedUnit,
    gpu_hours                                                    AS PricingQuantity,
    'GPU-Hour'                                                   AS PricingUnit,
    'Self-hosted'                                                AS ProviderName,
    'Self-hosted'                                                AS PublisherName,
    'Self-hosted'                                                AS InvoiceIssuerName,
    'AI and Machine Learning'                                    AS ServiceCategory,
    'LLM inference'                                              AS ServiceName,
    resource_id                                                  AS ResourceId,
    resource_name                                                AS ResourceName,
    resource_type                                                AS ResourceType,
    tenant                                                       AS SubAccountId,
    tenant                                                       AS SubAccountName,
    to_json(map_from_entries(list_filter(
        [('model', model), ('tenant', tenant), ('route', route), ('node', host_name)],
        lambda x: x[2] IS NOT NULL)))::VARCHAR                   AS Tags,
    kind                                                         AS x_ChargeKind,
    model                                                        AS x_Model,
    tenant                                                       AS x_Tenant,
    route                                                        AS x_Route,
    host_name                                                    AS x_Node,
    requests                                                     AS x_Requests,
    output_tokens                                                AS x_OutputTokens,
    energy_j / 3.6e6                                             AS x_EnergyKwh,
    carbon_g                                                     AS x_CarbonGrams,
    idle_share_usd                                               AS x_IdleShareCost,
    api_cost_usd                                                 AS x_ApiListPriceCost,
    pricing_version                                              AS x_PricingVersion,
    attribution_method                                           AS x_AttributionMethod,
    simulated                                                    AS x_Simulated
FROM lines
ORDER BY ChargePeriodStart, x_ChargeKind DESC, x_Model, x_Tenant, ResourceId
