# mnist rules: see workflow/rules/mnist.smk (being written)
