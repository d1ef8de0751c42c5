-- int_request_slo: each request judged against its model's latency objectives (settings file,
-- '*' for models without their own). A request is good when it succeeded and meets every
-- objective that is set: vllm bench serve's definition, behind SLO attainment and goodput.
CREATE OR REPLACE TEMP TABLE int_request_slo AS
WITH slo AS (
    SELECT r.request_uid, r.outcome, r.ttft_s, r.tpot_s, r.e2e_s,
        coalesce(s.ttft_s, d.ttft_s) AS slo_ttft_s,
        coalesce(s.tpot_s, d.tpot_s) AS slo_tpot_s,
        coalesce(s.e2e_s, d.e2e_s)   AS slo_e2e_s
    FROM int_requests r
    LEFT JOIN config_slo s ON s.model = r.model
    LEFT JOIN config_slo d ON d.model = '*'
)
SELECT request_uid, slo_ttft_s, slo_tpot_s, slo_e2e_s,
    outcome = 'ok'
    AND (slo_ttft_s IS NULL OR ttft_s <= slo_ttft_s)
    AND (slo_tpot_s IS NULL OR coalesce(tpot_s, 0) <= slo_tpot_s)
    AND (slo_e2e_s IS NULL OR e2e_s <= slo_e2e_s) AS slo_met
FROM slo;
