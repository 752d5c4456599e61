// Nothing: only the license matters.
