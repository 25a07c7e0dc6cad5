"""What the pipeline tells the outside: metrics under ``smsc.`` and OpenLineage facets."""
