"""The warehouse: where the jobs write and the tools, training and reconciliation read.

One `--warehouse` value names it: a directory (the embedded warehouse: Parquet files per table
and a DuckDB catalog over them, `warehouse.embedded`) or a BigQuery dataset `bq://PROJECT.DATASET`
(`warehouse.bigquery`, the only module that parses that form). The jobs write through a
`warehouse.sinks.Sink` (`open_warehouse`); everything else reads through a
`warehouse.reader.WarehouseReader` (`open_reader`): the same SQL on both.
"""
