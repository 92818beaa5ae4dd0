"""The accounting system's master data (suppliers, items, taxes, custom field options) kept in step in Precoro."""
