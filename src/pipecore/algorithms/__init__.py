"""Upper-bound methods: algorithms that find partitions (DESIGN.md section 2)."""
