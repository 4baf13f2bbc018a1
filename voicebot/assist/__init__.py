"""voicebot.assist"""
