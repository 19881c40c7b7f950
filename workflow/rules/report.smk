# report rules: see workflow/rules/report.smk (being written)
