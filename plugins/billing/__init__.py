"""Private-pay billing: fee schedule, invoices, payments, superbills and Good Faith Estimates."""
