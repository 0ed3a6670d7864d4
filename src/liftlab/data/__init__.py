"""Reading the contract tables: folders of Parquet/CSV, databases, Spark."""
