-- Appeals and reversals per month, and the overturn rate of decisions by how automated they
-- were: the accuracy indicator of the automated means the DSA asks for.
SELECT
  EXTRACT(YEAR FROM appeal_decided_at) AS year,
  EXTRACT(MONTH FROM appeal_decided_at) AS month,
  automated_decision,
  COUNT(*) AS appeals,
  SUM(CASE WHEN outcome = 'overturned' THEN 1 ELSE 0 END) AS overturned,
  SUM(CASE WHEN outcome = 'overturned' THEN 1 ELSE 0 END) / COUNT(*) AS overturn_rate
FROM appeals
GROUP BY year, month, automated_decision
ORDER BY year, month, automated_decision
