-- DSA Art. 15/24: restrictive decisions (and referrals to human review, action
-- human_review) per month by the uploader's country and action.
-- Suppressed cells (under the minimum count) are counted apart.
SELECT
  period_start,
  country,
  action,
  SUM(CASE WHEN suppressed THEN 0 ELSE item_count END) AS decisions,
  SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS suppressed_cells
FROM compliance.transparency_report
WHERE measure = 'decisions' AND breakdown = 'country' AND period_type = 'month'
GROUP BY period_start, country, action
ORDER BY period_start NULLS LAST, country NULLS LAST, action NULLS LAST
