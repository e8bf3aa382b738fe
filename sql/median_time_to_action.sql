-- Median hours from upload (or from the notice, for reported uploads) to action per month,
-- content type, action and detection method (shown cells only).
SELECT
  period_start,
  content_type,
  action,
  detection_method,
  SUM(item_count) AS decisions,
  MAX(median_hours_to_action) AS worst_cell_median_hours
FROM compliance.transparency_report
WHERE measure = 'decisions' AND breakdown = 'content_type' AND period_type = 'month' AND NOT suppressed
GROUP BY period_start, content_type, action, detection_method
ORDER BY period_start NULLS LAST, content_type NULLS LAST, action NULLS LAST, detection_method NULLS LAST
