"""dlws verification: testinfra checks that mirror roles/, run against a pyinfra inventory."""
