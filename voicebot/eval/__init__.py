"""voicebot.eval"""
