"""voicebot.server"""
