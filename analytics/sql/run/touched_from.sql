-- The earliest start among spans whose shares or answers new data changes: those running
-- into the new data's time [$lo, $hi], or sharing a trace with new spans; looked for among
-- spans ending at most the margin before it ($margin).
SELECT min(start_time_unix_nano)
FROM raw_spans
WHERE end_time_unix_nano >= $margin
  AND (end_time_unix_nano >= $lo AND start_time_unix_nano <= $hi
       OR trace_id IN (SELECT trace_id FROM new_spans))
