-- DSA Art. 15/24: restrictive decisions (and referrals to human review, action
-- human_review) per month by category, action, detection method and
-- whether the decision was automated. Suppressed cells (under the minimum count) are counted
-- apart so the totals never expose a small cell.
SELECT
  period_start,
  category,
  action,
  detection_method,
  automated_decision,
  SUM(CASE WHEN suppressed THEN 0 ELSE item_count END) AS decisions,
  SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS suppressed_cells
FROM compliance.transparency_report
WHERE measure = 'decisions' AND breakdown = 'overall' AND period_type = 'month'
GROUP BY period_start, category, action, detection_method, automated_decision
ORDER BY period_start NULLS LAST, category NULLS LAST, action NULLS LAST, detection_method NULLS LAST, automated_decision NULLS LAST
