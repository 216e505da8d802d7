"""Result tables (CSV, markdown) and plots of resilience and leakage."""
