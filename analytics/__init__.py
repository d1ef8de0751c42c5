"""Analytics: layered SQL (staging → intermediate → marts) over the store, plus its runner."""
