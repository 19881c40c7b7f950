# stability rules: see workflow/rules/stability.smk (being written)
