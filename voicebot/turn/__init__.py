"""End-of-turn detection: Smart Turn (audio), a German text end-of-utterance model, text cues, the decision."""
