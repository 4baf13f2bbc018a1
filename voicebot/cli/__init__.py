"""voicebot.cli"""
