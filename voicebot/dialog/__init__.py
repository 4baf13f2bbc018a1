"""voicebot.dialog"""
