"""HTML -> Article: pure functions, no I/O, no Scrapy, no database (DESIGN.md, Extraction API)."""
