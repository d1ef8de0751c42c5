-- The kernel's requests: phases and tokens of work, in key order.
SELECT req_idx, class_idx, scheduled_s, first_token_s, finished_s, prefill_tokens,
       decode_tokens, context
FROM int_request_work
ORDER BY req_idx
