-- What the pipeline did not score, and why.
SELECT disposition, step, error_type, COUNT(*) AS items
FROM compliance.dead_letter
GROUP BY disposition, step, error_type
ORDER BY items DESC NULLS LAST, disposition NULLS LAST, step NULLS LAST, error_type NULLS LAST
