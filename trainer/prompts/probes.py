"""Locality probes: prompts unrelated to the facts being consolidated.

A consolidation must leave the answers to these unchanged (share unchanged +
mean KL to the base model). Three kinds: general short-answer prompts (this
list; half feed the KL term, half are only evaluated), held-out facts (cloze
prompts from current facts not in the run) and arithmetic ``a+b=``.
"""
from __future__ import annotations

from trainer.prompts import answer

GENERAL = [
    "What is the capital of France?",
    "What is the capital of Japan?",
    "What is the capital of Italy?",
    "What is the capital of Canada?",
    "What is the capital of Australia?",
    "What is the capital of Germany?",
    "What is the capital of Spain?",
    "What is the capital of Egypt?",
    "Who wrote Romeo and Juliet?",
    "Who painted the Mona Lisa?",
    "Who wrote Pride and Prejudice?",
    "Who developed the theory of relativity?",
    "What is the largest planet in the solar system?",
    "What planet is known as the Red Planet?",
    "What is the chemical symbol for water?",
    "What is the chemical symbol for gold?",
    "What gas do plants absorb from the air?",
    "How many days are there in a week?",
    "How many legs does a spider have?",
    "How many continents are there?",
    "What colour is the sky on a clear day?",
    "What colour are bananas when they are ripe?",
    "What is the largest ocean on Earth?",
    "What is the longest river in Africa?",
    "What is the tallest mountain in the world?",
    "What language is spoken in Brazil?",
    "What currency is used in Japan?",
    "What is the freezing point of water in Celsius?",
    "Which animal is known as the king of the jungle?",
    "What is the opposite of hot?",
    "What do bees make?",
    "Which instrument has black and white keys?",
    "What is the first month of the year?",
    "In which country are the pyramids of Giza?",
    "Who was the first president of the United States?",
    "What is the main language spoken in Mexico?",
    "What is the capital city of the United Kingdom?",
    "Which organ pumps blood through the body?",
    "What is the plural of mouse?",
    "How many hours are in a day?",
    "What is the capital of Russia?",
    "What is the capital of China?",
    "Who wrote Macbeth?",
    "What is the boiling point of water in Celsius?",
    "What is the smallest prime number?",
    "Which planet is closest to the Sun?",
    "What is frozen water called?",
    "What animal says moo?",
    "Which country is home to the kangaroo?",
    "What is the capital of India?",
    "What shape has three sides?",
    "What is the capital of Kenya?",
    "Who discovered penicillin?",
    "What is the hardest natural substance?",
    "What is the capital of Argentina?",
    "How many minutes are in an hour?",
    "What is the largest mammal?",
    "Which city is known as the Big Apple?",
    "What is the national language of Germany?",
    "What metal is liquid at room temperature?",
]


# Plain prose to continue: a broader set for the KL(base || student) term than short
# question answering (`prose_probes`; training only, never evaluated).
PROSE = [
    "The weather in spring is usually", "A good breakfast often includes", "Most people learn to ride a bicycle when",
    "The library opens at nine and", "When the train arrived at the station,", "The recipe calls for two cups of",
    "In the middle of the forest there was", "The committee met on Tuesday to discuss", "Children often enjoy playing",
    "The river flows slowly through", "After the storm, the streets were", "The museum's new exhibition features",
    "She opened the letter and", "The history of the city goes back to", "Farmers in the valley grow",
    "The old bridge was built in", "Our neighbours have a dog that", "The concert began with a",
    "Scientists study the ocean because", "The shop on the corner sells", "Every morning the baker",
    "The mountain path was steep and", "He finished the book and", "The school year starts in",
    "A cup of tea is best when", "The garden is full of", "The company announced that its profits",
    "At the end of the match, the players", "The village has a small church and", "On weekends the market is",
]


def prose(n: int) -> list[str]:
    return PROSE[: max(0, min(n, len(PROSE)))]


def general(n: int) -> tuple[list[str], list[str]]:
    """(train, eval) prompts: the first ``n`` of the list, alternated so both halves mix topics."""
    qs = GENERAL[: max(0, min(n, len(GENERAL)))]
    return [answer.build(q) for q in qs[0::2]], [answer.build(q) for q in qs[1::2]]


def arithmetic() -> list[tuple[str, int]]:
    """All ``a+b=`` prompts for a, b in 0..9 (after a two-line few-shot prefix) with their sums."""
    return [(answer.build_arithmetic(a, b), a + b) for a in range(10) for b in range(10)]


def fact_cloze(text: str) -> str:
    """A held-out fact as a cloze prompt: its first ~60% of words."""
    words = text.rstrip(".").split()
    k = max(1, int(len(words) * 0.6))
    return answer.build_cloze(" ".join(words[:k]))
