-- The spans received after $after (ns): what a live run recomputes around.
CREATE TEMP TABLE new_spans AS
SELECT trace_id, start_time_unix_nano AS t0, end_time_unix_nano AS t1
FROM raw_spans
WHERE received_at_unix_nano > $after
