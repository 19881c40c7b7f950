# bias1d rules: see workflow/rules/bias1d.smk (being written)
