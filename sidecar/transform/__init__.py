"""Between the source and the sinks: schema checks, repairs, quarantine, batching."""
