-- Appeals decided per month against decisions of each kind, the reversals, and the overturn
-- rate by how automated the appealed decision was: for fully automated decisions, the accuracy
-- indicator of the automated means the DSA asks for (Art. 15(1)(e)). Read from the
-- published transparency report, so cells under the minimum count stay suppressed here too.
SELECT
  period_start,
  automated_decision,
  action,
  SUM(CASE WHEN suppressed THEN 0 ELSE item_count END) AS appeals,
  SUM(CASE WHEN suppressed THEN 0 ELSE overturned_count END) AS overturned,
  SUM(CASE WHEN suppressed THEN 0 ELSE overturned_count END)
    / NULLIF(SUM(CASE WHEN suppressed THEN 0 ELSE item_count END), 0) AS overturn_rate,
  SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS suppressed_cells
FROM compliance.transparency_report
WHERE measure = 'appeals' AND breakdown = 'overall' AND period_type = 'month'
GROUP BY period_start, automated_decision, action
ORDER BY period_start NULLS LAST, automated_decision NULLS LAST, action NULLS LAST
