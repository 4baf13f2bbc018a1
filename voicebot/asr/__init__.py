"""voicebot.asr"""
