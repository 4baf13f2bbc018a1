"""voicebot.store"""
