"""The README's Python API, runnable as is: meta-train ProtoNet on the built-in glyphs, evaluate it,
adapt it to a new task from five examples, save and load it (about 4 minutes on 2 CPU cores)."""

import os

from fewshot import Learner
from fewshot.data import EpisodeSampler, get_dataset

steps = int(os.environ.get("FEWSHOT_EXAMPLE_STEPS", "2000"))  # the test suite runs a few steps

learner = Learner("protonet", dataset="glyphs", steps=steps)  # a new folder under runs/
learner.fit()
print(learner.evaluate())  # accuracy 9x.xx% +- 0.xx% (95% CI, 600 episodes)

# a new 5-way 1-shot task from characters the learner never saw
test = get_dataset("glyphs", split="test")
sampler = EpisodeSampler(test, ways=5, shots=1, queries=15, seed=0)
episode = sampler.sample(1)  # support_x [1, 5, 1, 28, 28], query_x [1, 75, 1, 28, 28]
support_x, support_y, query_x = episode.support_x[0], episode.support_y[0], episode.query_x[0]

predict = learner.deploy(support_x, support_y)
logits = predict(query_x)  # [75, 5]
accuracy = (logits.argmax(1) == episode.query_y[0]).float().mean()
print(f"this task: {accuracy:.0%} of 75 queries right")

learner.save("my-learner")
learner = Learner.load("my-learner")
