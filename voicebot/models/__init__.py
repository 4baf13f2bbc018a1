"""voicebot.models"""
