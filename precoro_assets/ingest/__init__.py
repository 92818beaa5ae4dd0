"""Reading Precoro into the warehouse: documents by day, reference data, detail workers, webhooks."""
