-- stg_collector_metrics: the collector's own metrics (collector/telemetry.py): items accepted
-- and rejected by signal, requests throttled, duplicate spans, queue depth, flush duration
-- (value = total seconds, count = flushes), store size and files. Counters are cumulative
-- since the collector started: the latest row of a series is its total.
CREATE OR REPLACE VIEW stg_collector_metrics AS
SELECT
    host_name,
    metric_name,
    attributes['signal']                                              AS signal,
    attributes['outcome']                                             AS outcome,
    time_unix_nano / 1e9                                              AS ts_s,
    metric_type,
    value,
    count
FROM raw_metric_points
WHERE service_name = 'inferledger-collector';
