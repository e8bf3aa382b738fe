-- Median hours from upload to action per month, content type and action (shown cells only).
SELECT
  period_start,
  content_type,
  action,
  SUM(item_count) AS decisions,
  MAX(median_hours_to_action) AS worst_cell_median_hours
FROM transparency_aggregates
WHERE period_type = 'month' AND NOT suppressed
GROUP BY period_start, content_type, action
ORDER BY period_start, content_type, action
