"""The rule language: the JSON rule document a tag's definition is
(:mod:`.definitions`), its text spelling (:mod:`.syntax`) and the vocabulary it
may use (:mod:`.vocabulary`). Pure Python, no models: the dictionary stores and
validates rules with it, the engine evaluates them, audiences parse expressions."""
