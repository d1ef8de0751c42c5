-- FOCUS-shaped cost export (FinOps Open Cost and Usage Specification column names where they
-- fit; InferLedger's own columns prefixed x_). One row per charge period (hour or day, from
-- getvariable('grain')) × model × tenant × route × node, plus one idle row per GPU and period
-- for idle cost the pricing file's policy does not spread over responses.
-- Reads the published tables; run by `inferledger analytics export`.
WITH usage AS (  -- the rollup of the chosen grain
    SELECT hour AS period, * EXCLUDE (hour) FROM cost_hourly
    WHERE getvariable('grain') = 'hour' AND placed_requests > 0
    UNION ALL BY NAME
    SELECT day AS period, * EXCLUDE (day) FROM cost_daily
    WHERE getvariable('grain') = 'day' AND placed_requests > 0
),
idle AS (
    SELECT date_trunc(getvariable('grain'), hour) AS period, host_name, gpu_uuid, gpu_model,
        bool_or(simulated) AS simulated, sum(idle_s) AS idle_s, sum(idle_j) AS idle_j,
        sum(idle_cost_usd) AS idle_cost_usd, any_value(pricing_version) AS pricing_version
    FROM gpu_time
    GROUP BY ALL
    HAVING sum(idle_s) > 0
),
charges AS (
    SELECT period, 'LLM inference: ' || coalesce(model, '?') || ' for ' || coalesce(tenant, '?')
            AS charge_description,
        'model/' || coalesce(model, 'unknown') AS resource_id, model AS resource_name,
        'LLM inference' AS resource_type, gpu_seconds / 3600.0 AS gpu_hours,
        total_cost_usd AS cost, model, tenant, route, host_name, requests, output_tokens,
        energy_j, carbon_g, idle_share_usd, api_cost_usd, pricing_version, attribution_method,
        simulated, 'usage' AS kind
    FROM usage
    UNION ALL
    SELECT period, 'Idle GPU time on ' || host_name, gpu_uuid, gpu_model, 'GPU',
        idle_s / 3600.0, idle_cost_usd, NULL, NULL, NULL, host_name, 0, 0, idle_j, NULL, 0,
        NULL, pricing_version, NULL, simulated, 'idle'
    FROM idle
    WHERE getvariable('idle_policy') = 'separate'
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
FROM charges
ORDER BY ChargePeriodStart, x_ChargeKind DESC, x_Model, x_Tenant, ResourceId
