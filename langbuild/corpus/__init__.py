"""The corpus step's machinery: sources, cleaning and quality filters, language ID, de-duplication, shards."""
