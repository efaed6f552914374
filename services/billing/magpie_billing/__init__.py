"""Magpie billing: quota packages and a ledger per tenant; every billable unit charged exactly once."""
