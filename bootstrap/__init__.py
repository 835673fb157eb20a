"""The `helpdesk` command line and the process bootstrap (outside the domain)."""
