-- Statements of reasons sent to the EU Transparency Database, per application date and category.
SELECT application_date, category, automated_decision, COUNT(*) AS statements
FROM compliance.statements_of_reasons
GROUP BY application_date, category, automated_decision
ORDER BY application_date NULLS LAST, category NULLS LAST, automated_decision NULLS LAST
