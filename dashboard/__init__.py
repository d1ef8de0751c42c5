"""Streamlit dashboard for FinOps and SREs, reading the store read-only."""
